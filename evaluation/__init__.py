"""virtualfocus.evaluation — scoring models on z-stacks with the thesis metrics, classical baselines, reports
and the demo (numpy + OpenCV; the runtime is imported only to score it).

- :mod:`.evaluate` — ``virtualfocus evaluate``: per-level metrics, success tables, report
- :mod:`.baselines` — unsharp mask and Richardson-Lucy, tuned on other stacks; the physics Wiener oracle
- :mod:`.report` — report.md / report.json / plots of one evaluation
- :mod:`.suite` — ``virtualfocus evaluate --suite standard``: the one report every change is measured by
- :mod:`.demo` — ``virtualfocus demo``
"""
