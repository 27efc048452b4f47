"""Diagnostics that explain why a run learns or not, measured on a model between steps.

* ``gradients``: the exact gradient norm through time ||dL/dh_t|| of the top layer (and
  ||dL/dx_t||, the LSTM's ||dL/dc_t||)
* ``dynamics``: the step Jacobian's singular values, the Lyapunov spectrum, gate saturation
* ``summary``: the per-step gradient factor r and the gradient span of a profile (numpy only)
* ``task_memory``: the task memory probe: what the task needs, decoded from h_t per delay
* ``memory``: the task-agnostic linear-probe memory capacity and probe span (Jaeger 2001)
* ``theory``: the vanishing/exploding arithmetic of the literature, computed
"""

from rnnbench.diagnostics.gradients import (
    default_profile_method,
    gradient_norms_through_time,
    hidden_gradients,
)
from rnnbench.diagnostics.memory import ProbeResult, memory_probe
from rnnbench.diagnostics.summary import SPAN_THRESHOLD, ProfileSummary, summarize_profile

__all__ = [
    "SPAN_THRESHOLD",
    "ProbeResult",
    "ProfileSummary",
    "default_profile_method",
    "gradient_norms_through_time",
    "hidden_gradients",
    "memory_probe",
    "summarize_profile",
]
