"""virtualfocus.simulation — bright-field optics and the defocus simulator (numpy + OpenCV, no torch).

What the runtime never runs: it makes the training and evaluation data.

- :mod:`.optics` — optics parameters and the point-spread function (re-exports the two below)
- :mod:`.transfer` — transfer functions on FFT grids and their caches
- :mod:`.render` — the layered renderer (captures of thin layers at any focus offset)
- :mod:`.wotf` — partially coherent imaging: weak-object transfer functions and Abbe's reference sum
- :mod:`.camera` — camera noise and bit depth
- :mod:`.randomize` — randomized microscopes per stack and the semi-synthetic path for real sharp images
- :mod:`.realism` — two-sided blur statistics that compare simulated with real through-focus stacks
- :mod:`.config`, :mod:`.cells`, :mod:`.specimen`, :mod:`.field` — what a simulated stack is made of: its
  configuration, the cells, one random smear field, and the field's captures at any focus offset
- :mod:`.simulate` — z-stacks from smear fields (``virtualfocus simulate``); re-exports the names above
- :mod:`.semisynthetic` — z-stacks from real in-focus smear images (``virtualfocus semisynth``)
- :mod:`.simscope` — a pymmcore-plus microscope whose camera is the simulator
"""
