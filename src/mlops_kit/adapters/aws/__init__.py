"""The AWS backend: boto3 S3, SQS, DynamoDB and SNS behind the ports. Clients are lazy and
cached (see _clients); botocore errors become mlops_kit.errors."""

from mlops_kit.adapters.aws._clients import Identity, acting_as, clear_clients, client, current_identity
from mlops_kit.adapters.aws.notifier import SnsNotifier
from mlops_kit.adapters.aws.queue import SqsQueue
from mlops_kit.adapters.aws.store import PrefixRoutedStore, S3ObjectStore
from mlops_kit.adapters.aws.table import DynamoTable

__all__ = ["DynamoTable", "Identity", "PrefixRoutedStore", "S3ObjectStore", "SnsNotifier",
           "SqsQueue", "acting_as", "clear_clients", "client", "current_identity"]
