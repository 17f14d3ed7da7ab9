"""dagr: Dispersive and Anchoring Geometry Regularization for multimodal learning.

``dagr.DAGR`` adds one term to any training loss::

    reg = dagr.DAGR(lambda_d=0.1, lambda_a=0.1, tau=0.2)
    out = reg({"audio": z_audio, "video": z_video})
    (task_loss + out.loss).backward()
"""

from . import geometry, utils
from .dispersion import dispersion_loss
from .pareto import min_norm_alpha
from .regularizer import DAGR, DAGROutput, anchoring_loss
from .utils import set_seed

__version__ = "0.1.0"

__all__ = [
    "DAGR",
    "DAGROutput",
    "anchoring_loss",
    "dispersion_loss",
    "geometry",
    "min_norm_alpha",
    "set_seed",
    "utils",
]
