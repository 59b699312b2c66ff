"""Controllable matting: a prompted object's binary mask -> trimap -> alpha matte.

- `trimap`: trimaps from a mask (an unknown band around its boundary) or from an alpha matte;
- `files`: reading alpha mattes and trimaps with clear errors;
- `metrics`: SAD, MSE, gradient and connectivity errors (Rhemann et al. 2009);
"""
