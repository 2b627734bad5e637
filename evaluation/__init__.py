"""virtualfocus.evaluation — scoring models on z-stacks with the thesis metrics, classical baselines, reports
and the demo (numpy + OpenCV; the runtime is imported only to score it).

- :mod:`.evaluate` — ``virtualfocus evaluate``: per-level metrics, success tables, report
- :mod:`.baselines` — unsharp mask and Richardson-Lucy, tuned on other stacks
- :mod:`.demo` — ``virtualfocus demo``
"""
