#!/usr/bin/env bash
# Repack the registry's sal-detectron2 wheel into a pure-Python `py3-none-any` wheel.
#
# Usage: repack_detectron2.sh PYTHON OUT_DIR   (prints the repacked wheel's path on stdout)
#
# The published file is named cp310-none-any but its WHEEL metadata says cp310-cp310-linux_x86_64,
# and it carries a _C.cpython-310 binary that no other Python can load. We drop that binary (and its
# RECORD line) and mark the wheel pure. What is lost without detectron2's _C: rotated-box ops,
# deformable conv and the fast COCO eval (COCOEvaluator falls back to pycocotools); MQ-Former uses
# none of them.
set -euo pipefail
py="$1"
out="$2"
version="0.7.2"
mkdir -p "$out/download" "$out/unpacked" "$out/wheel"

"$py" -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: \
  --python-version 3.10 -d "$out/download" "sal-detectron2==$version" >&2
src="$(ls "$out"/download/sal_detectron2-*.whl)"

"$py" -m wheel unpack -d "$out/unpacked" "$src" >&2
tree="$(ls -d "$out"/unpacked/*/)"
find "$tree" -name '_C*.so' -delete
dist_info="$(ls -d "$tree"*.dist-info)"
sed -i -E '/\/_C[^,]*\.so,/d' "$dist_info/RECORD"
sed -i -E -e 's/^Root-Is-Purelib: .*/Root-Is-Purelib: true/' -e 's/^Tag: .*/Tag: py3-none-any/' \
  "$dist_info/WHEEL"

"$py" -m wheel pack -d "$out/wheel" "$tree" >&2
ls "$out"/wheel/*.whl
