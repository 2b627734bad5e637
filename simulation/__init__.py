"""virtualfocus.simulation — bright-field optics and the defocus simulator (numpy + OpenCV, no torch).

What the runtime never runs: it makes the training and evaluation data.

- :mod:`.optics` — pupil, PSFs and OTFs, camera noise
- :mod:`.simulate` — simulated smear fields and their z-stacks (``virtualfocus simulate``)
- :mod:`.semisynthetic` — z-stacks from real in-focus smear images (``virtualfocus semisynth``)
- :mod:`.simscope` — a pymmcore-plus microscope whose camera is the simulator
"""
