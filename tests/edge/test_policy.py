"""FocusPolicy: the one place that decides in-focus pass-through and trust, and says why."""

from __future__ import annotations

import numpy as np
from virtualfocus.edge.defocus import DefocusEstimate, FocusGainCalibration
from virtualfocus.edge.manifest import InputContract, Manifest
from virtualfocus.edge.policy import Capture, FocusPolicy, Judgement, describe_untrusted


def _manifest(**kw) -> Manifest:
    return Manifest(name="m", architecture="a", input=InputContract(), files=[], **kw)


def test_a_magnitude_is_reported_against_the_bound_it_exceeds():
    msg = describe_untrusted(DefocusEstimate(0.23, False), (-0.2, 0.4), model="vf-quality")
    assert "magnitude 0.23 µm exceeds 0.20 µm" in msg and "vf-quality's trusted range -0.2…+0.4 µm" in msg
    signed = describe_untrusted(DefocusEstimate(-0.5, True), (-0.2, 0.4))
    assert signed == "estimated defocus -0.50 µm is outside the trusted range -0.2…+0.4 µm"


def test_gain_below_the_calibrated_threshold_is_in_focus_and_judged_by_the_manifest():
    m = _manifest(trusted_defocus_um=(-0.2, 0.4),
                  focus_gain=FocusGainCalibration((0.0, 0.5, 1.0), (1.0, 1.5, 3.0), in_focus_below=1.1, stacks=1))
    policy = FocusPolicy()
    cap = Capture(np.zeros((32, 32, 3), np.uint8))
    j = policy.after(Judgement(), cap, m, gain=1.05)
    assert j.in_focus.startswith("already in focus (restoration gain 1.050 < 1.100)") and j.trusted is True
    j = policy.after(Judgement(), cap, m, gain=3.0)
    assert not j.in_focus and j.trusted is False and j.defocus_um == 1.0 and "exceeds 0.20 µm" in j.note
    assert not FocusPolicy(pass_in_focus=False).after(Judgement(), cap, m, gain=1.05).in_focus
