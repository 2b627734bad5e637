"""virtualfocus.simulation — bright-field optics and the defocus simulator (numpy + OpenCV, no torch).

What the runtime never runs: it makes the training and evaluation data.

- :mod:`.optics` — optics parameters, transfer functions and the layered renderer
- :mod:`.wotf` — partially coherent imaging: weak-object transfer functions and Abbe's reference sum
- :mod:`.camera` — camera noise and bit depth
- :mod:`.randomize` — randomized microscopes per stack and the semi-synthetic path for real sharp images
- :mod:`.realism` — two-sided blur statistics that compare simulated with real through-focus stacks
- :mod:`.simulate` — simulated smear fields and their z-stacks (``virtualfocus simulate``)
- :mod:`.semisynthetic` — z-stacks from real in-focus smear images (``virtualfocus semisynth``)
- :mod:`.simscope` — a pymmcore-plus microscope whose camera is the simulator
"""
