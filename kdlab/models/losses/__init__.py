"""kdlab's distillation losses, registered in ``mmrazor.registry.MODELS`` (one file per loss)."""
from kdlab.models.losses.amd import AMDLoss
from kdlab.models.losses.dcsf_kd import DCSFKDLoss
from kdlab.models.losses.dfmsd import DFMSDLoss
from kdlab.models.losses.dmkd import DMKDLoss
from kdlab.models.losses.dsamkd import DSAMKDLoss
from kdlab.models.losses.fgd import FGDLoss

__all__ = ['AMDLoss', 'DCSFKDLoss', 'DFMSDLoss', 'DMKDLoss', 'DSAMKDLoss', 'FGDLoss']
from kdlab.models.losses.crosskd import CrossKDLoss  # noqa: E402
from kdlab.models.losses.icd import ICDLoss  # noqa: E402

__all__ += ['CrossKDLoss', 'ICDLoss']
