"""virtualfocus.zstacks — the project's z-stack format (TIFF + JSON sidecar) and real through-focus stacks
(numpy + OpenCV + tifffile, no torch).

- :mod:`.stack` — :class:`~.stack.ZStack`, ``read_stack`` / ``write_stack``
- :mod:`.realstacks` — loading real stacks, re-centring on focus, plane registration, training crops
- :mod:`.importer` — ``virtualfocus import-stacks``: real fields of view into the stack format, registered and
  brightness-matched, with provenance
"""
