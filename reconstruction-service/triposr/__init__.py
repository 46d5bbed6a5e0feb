"""TripoSR, written for meshforge: the published ``stabilityai/TripoSR`` files load unchanged.

Single image → triplane → density and colour field → marching-cubes mesh. The modules mirror the
published checkpoint's layout (see docs/triposr.md): every parameter name and shape is the one in
``model.ckpt``, so ``load_state_dict(strict=True)`` proves the files and the code agree.
Importing this package imports torch; the CPU stack without torch never does.
"""
