"""Small networks (equinox) shared by the trained-network systems.

Networks expose the feature map: ``net.features(x) = Phi(x)`` (penultimate post-activations) and
``net(x) = W Phi(x) + b``. Builders :func:`mlp` and :func:`cnn`; heads :class:`LinearHead`
(learned) and :class:`ETFHead` (fixed simplex ETF at ``p = K``); lazy scaling :class:`Lazy`;
many seeds at once with :func:`init_models`, the (trainable arrays, static) split with
:func:`split` / :func:`trainable_mask` / :func:`combine` / :func:`freeze`, and loss factories
:func:`mse_loss` / :func:`ce_loss` for a trainer vmapped over seeds. Needs equinox (the ``nets``
extra).
"""

from .bodies import CNNBody as CNNBody
from .bodies import MLPBody as MLPBody
from .heads import ETFHead as ETFHead
from .heads import LinearHead as LinearHead
from .heads import etf_matrix as etf_matrix
from .losses import ce_loss as ce_loss
from .losses import mse_loss as mse_loss
from .model import Lazy as Lazy
from .model import Net as Net
from .model import batch_features as batch_features
from .model import batch_outputs as batch_outputs
from .model import cnn as cnn
from .model import mlp as mlp
from .params import combine as combine
from .params import freeze as freeze
from .params import init_models as init_models
from .params import split as split
from .params import trainable_mask as trainable_mask
