"""Every function of the image, keyed by its config kind."""

from . import API_VERSION
from .accelerator.function import FUNCTION as ACCELERATOR
from .autoscaling.function import FUNCTION as AUTOSCALING
from .benchmark.function import FUNCTION as BENCHMARK
from .krmfn import Registry
from .model_service.function import FUNCTION as MODEL_SERVICE
from .model_source.function import FUNCTION as MODEL_SOURCE
from .monitoring.function import FUNCTION as MONITORING
from .render import function as render
from .spot.function import FUNCTION as SPOT

REGISTRY = Registry(API_VERSION)
for _fn in (ACCELERATOR, SPOT, MODEL_SOURCE, MONITORING, AUTOSCALING, MODEL_SERVICE, BENCHMARK):
    REGISTRY.register(_fn)
# One call applies every intent of an entry, with the functions above.
RENDER = REGISTRY.register(render.make({kind: REGISTRY.get(kind) for kind in render.ORDER}))
