"""python main.py --config=configs/mesh_scan.py --workdir=/tmp/fno_mesh_scan

Mode `mesh_scan`: Mesh with K steps fused by lax.scan; batches [K, B, ...] sharded P(None,
'data').
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.mode = "mesh_scan"
    return config
