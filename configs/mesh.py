"""python main.py --config=configs/mesh.py --workdir=/tmp/fno_mesh

Mode `mesh`: jit over a jax.sharding.Mesh: state replicated, batches NamedSharding(mesh,
P('data')).
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.mode = "mesh"
    return config
