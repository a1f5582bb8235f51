"""Critical points and their classification, generic over the registered systems.

Classes and records, the classifier (:func:`classify`, :func:`classify_batch`), the facts a system
supplies, deduplication modulo symmetries, and the squared-gradient-norm objective that turns any
optimiser into a finder of critical points of every index."""

from .classes import CLASS_NAMES as CLASS_NAMES
from .classes import COUNTEREXAMPLE_CLASSES as COUNTEREXAMPLE_CLASSES
from .classes import CounterexampleWarning as CounterexampleWarning
from .classes import CriticalPointRecord as CriticalPointRecord
from .classes import PointClass as PointClass
from .classes import warn_counterexamples as warn_counterexamples
from .classify import classify as classify
from .classify import classify_batch as classify_batch
from .classify import resolve_method as resolve_method
from .dedup import Deduplicated as Deduplicated
from .dedup import deduplicate as deduplicate
from .facts import ModelFacts as ModelFacts
from .facts import Tolerances as Tolerances
from .facts import default_tolerances as default_tolerances
from .facts import numerical_rank_of as numerical_rank_of
from .gradnorm import GradNormSpec as GradNormSpec
from .points import CriticalPoints as CriticalPoints
from .points import concat_points as concat_points
from .points import points_from_polish as points_from_polish
