"""Pure lifecycle logic. Nothing here imports boto3, pulumi, os.environ or a handler."""
