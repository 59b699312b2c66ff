"""The vocabulary the export tests export (a plain module, importable by name)."""
EXPORT_VOCABULARY = ["red star", "green hexagon", "a blue cross on the left", "sky"]
EXPORT_STUFF = ["sky"]
