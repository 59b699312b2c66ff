"""Controllable matting: a prompted object's binary mask -> trimap -> alpha matte (the paper's
section 4.4, with a small AEMatter-style refinement).

- `trimap`: trimaps from a mask (an unknown band around its boundary) or from an alpha matte;
- `files`: reading alpha mattes and trimaps with clear errors;
- `metrics`: SAD, MSE, gradient and connectivity errors (Rhemann et al. 2009);
- `colour_prior`, `refiner`: the refinement network (image + trimap + a prior alpha -> alpha);
- `training_data`, `training`: its training on the matting split;
- `inference`: loading it and matting an image given a trimap or a mask;
- `peers`: closed-form and KNN matting (pymatting);
- `peer_table`: every method on the same images, scored by the matting evaluator.
"""
