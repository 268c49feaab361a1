"""Replication: the replica target, the replica lease, the Litestream sidecar, restores.

The node drives these pieces in the order of DESIGN.md section 4: parse the
``--replica`` URL, take the lease (section 8), decide whether the local file is
trusted (else quarantine it and restore from the newest epoch with data), then
run the sidecar for the held epoch. Nothing here keeps global state: every
object takes its settings (and clocks) explicitly.
"""

from edge.replication.control import ControlClient, SyncResult
from edge.replication.external import ExternalSidecar
from edge.replication.lease import LEASE_KEY, AcquireResult, Lease, LeaseLost, LeaseRecord
from edge.replication.objects import ObjectInfo, ObjectStore, open_store
from edge.replication.restore import (
    RestoreResult,
    check_reachable,
    epoch_span,
    list_epochs,
    newest_epoch_with_data,
    prune_epochs,
    quarantine,
    restore,
)
from edge.replication.sidecar import Sidecar
from edge.replication.target import (
    DEFAULT_REGION,
    ReplicaTarget,
    child_env,
    find_litestream,
    parse_replica_url,
)

__all__ = [
    "DEFAULT_REGION",
    "LEASE_KEY",
    "AcquireResult",
    "ControlClient",
    "ExternalSidecar",
    "Lease",
    "LeaseLost",
    "LeaseRecord",
    "ObjectInfo",
    "ObjectStore",
    "ReplicaTarget",
    "RestoreResult",
    "Sidecar",
    "SyncResult",
    "check_reachable",
    "child_env",
    "epoch_span",
    "find_litestream",
    "list_epochs",
    "newest_epoch_with_data",
    "open_store",
    "parse_replica_url",
    "prune_epochs",
    "quarantine",
    "restore",
]
