"""One ComponentResource per concern; each takes a typed args dataclass."""

from infra.components.api import InferenceApi, InferenceApiArgs
from infra.components.batch import BatchTraining, BatchTrainingArgs
from infra.components.functions import Functions, FunctionsArgs
from infra.components.image import TrainImage, TrainImageArgs
from infra.components.monitoring import AlertsTopic, AlertsTopicArgs, Monitoring, MonitoringArgs
from infra.components.queues import Queues, QueuesArgs
from infra.components.storage import SecureBucket, SecureBucketArgs, Storage, StorageArgs
from infra.components.table import RegistryTable, RegistryTableArgs

__all__ = [
    "AlertsTopic", "AlertsTopicArgs", "BatchTraining", "BatchTrainingArgs", "Functions",
    "FunctionsArgs", "InferenceApi",
    "InferenceApiArgs", "Monitoring", "MonitoringArgs", "Queues", "QueuesArgs",
    "RegistryTable", "RegistryTableArgs", "SecureBucket", "SecureBucketArgs", "Storage",
    "StorageArgs", "TrainImage", "TrainImageArgs",
]
