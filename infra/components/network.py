"""The network batch training runs in, when the stack does not bring its own VPC: subnets in
one availability zone (`batch.zones`: 2 for two) whose tasks reach AWS through VPC endpoints,
a NAT gateway or their own public IP (docs/training-engines.md compares them). Nothing can reach
the tasks: the security group has no ingress.

- endpoints (default): gateway endpoints for S3 and DynamoDB (free) and interface endpoints
  (private DNS) for what else the job calls or Fargate needs: ECR (api + dkr) to pull the
  image, CloudWatch Logs for its logs, SNS for alerts. No route to the internet at all.
- nat: a public subnet with a NAT gateway; the private subnets route 0.0.0.0/0 through it.
  The S3 and DynamoDB gateway endpoints stay, so dataset and registry traffic skips the NAT's
  per-GB charge.
- public: public subnets routed to an internet gateway; each task gets a public IP (Fargate
  needs one to pull its image without a NAT or endpoints) and still accepts no connection.
  Nothing is billed while no job runs. The gateway endpoints stay.

Interface endpoints are billed per hour per availability zone, so one zone is the default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.tags import component_tags

CIDR = "10.70.0.0/16"
PRIVATE = ("10.70.0.0/20", "10.70.16.0/20")
PUBLIC = "10.70.128.0/24"
GATEWAY_SERVICES = ("s3", "dynamodb")
INTERFACE_SERVICES = ("ecr.api", "ecr.dkr", "logs", "sns")


@dataclass
class NetworkArgs:
    name_prefix: str
    region: str
    mode: str = "endpoints"  # endpoints | nat | public
    zones: int = 1


class TrainingNetwork(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlopskit:batch:TrainingNetwork", name, None, opts)
        p, tags = f"{args.name_prefix}-batch", component_tags("batch-network")
        child = pulumi.ResourceOptions(parent=self)
        zones = aws.get_availability_zones_output(
            state="available", opts=pulumi.InvokeOutputOptions(parent=self)).names
        self.vpc = aws.ec2.Vpc(f"{p}-vpc", cidr_block=CIDR, enable_dns_support=True,
                               enable_dns_hostnames=True,  # private DNS of the endpoints
                               tags={**tags, "Name": f"{p}-vpc"}, opts=child)
        kind = "public" if args.mode == "public" else "private"
        self.subnets = [aws.ec2.Subnet(
            f"{p}-{kind}-{i}", vpc_id=self.vpc.id, cidr_block=cidr,
            availability_zone=zones.apply(zone_at(i)),
            map_public_ip_on_launch=False, tags={**tags, "Name": f"{p}-{kind}-{i}"},
            opts=child) for i, cidr in enumerate(PRIVATE[:args.zones])]
        igw = None
        if args.mode in ("nat", "public"):
            igw = aws.ec2.InternetGateway(f"{p}-igw", vpc_id=self.vpc.id, tags=tags, opts=child)
        to_internet = ([aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)]
                       if igw is not None and kind == "public" else None)
        routes = aws.ec2.RouteTable(f"{p}-{kind}", vpc_id=self.vpc.id, routes=to_internet,
                                    tags=tags, opts=child)
        for i, subnet in enumerate(self.subnets):
            aws.ec2.RouteTableAssociation(f"{p}-{kind}-{i}", subnet_id=subnet.id,
                                          route_table_id=routes.id, opts=child)
        self.security_group = aws.ec2.SecurityGroup(
            f"{p}-tasks", vpc_id=self.vpc.id, description="batch training tasks: no ingress",
            egress=[{"protocol": "tcp", "from_port": 443, "to_port": 443,
                     "cidr_blocks": ["0.0.0.0/0"], "description": "HTTPS to AWS APIs"}],
            tags=tags, opts=child)
        for service in GATEWAY_SERVICES:
            aws.ec2.VpcEndpoint(f"{p}-{service}", vpc_id=self.vpc.id,
                                service_name=f"com.amazonaws.{args.region}.{service}",
                                vpc_endpoint_type="Gateway", route_table_ids=[routes.id],
                                tags=tags, opts=child)
        if args.mode == "endpoints":
            endpoint_sg = aws.ec2.SecurityGroup(
                f"{p}-endpoints", vpc_id=self.vpc.id,
                description="interface endpoints: HTTPS from the training tasks only",
                ingress=[{"protocol": "tcp", "from_port": 443, "to_port": 443,
                          "security_groups": [self.security_group.id]}],
                tags=tags, opts=child)
            for service in INTERFACE_SERVICES:
                aws.ec2.VpcEndpoint(
                    f"{p}-{service.replace('.', '-')}", vpc_id=self.vpc.id,
                    service_name=f"com.amazonaws.{args.region}.{service}",
                    vpc_endpoint_type="Interface", private_dns_enabled=True,
                    subnet_ids=[s.id for s in self.subnets],
                    security_group_ids=[endpoint_sg.id], tags=tags, opts=child)
        elif args.mode == "nat":
            assert igw is not None
            public = aws.ec2.Subnet(f"{p}-public", vpc_id=self.vpc.id, cidr_block=PUBLIC,
                                    availability_zone=zones.apply(lambda z: z[0]),
                                    tags={**tags, "Name": f"{p}-public"}, opts=child)
            public_routes = aws.ec2.RouteTable(
                f"{p}-public", vpc_id=self.vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}], tags=tags,
                opts=child)
            aws.ec2.RouteTableAssociation(f"{p}-public", subnet_id=public.id,
                                          route_table_id=public_routes.id, opts=child)
            eip = aws.ec2.Eip(f"{p}-nat", domain="vpc", tags=tags, opts=child)
            nat = aws.ec2.NatGateway(f"{p}-nat", subnet_id=public.id, allocation_id=eip.id,
                                     tags=tags, opts=child)
            aws.ec2.Route(f"{p}-to-nat", route_table_id=routes.id,
                          destination_cidr_block="0.0.0.0/0", nat_gateway_id=nat.id, opts=child)
        self.subnet_ids = [s.id for s in self.subnets]
        self.security_group_ids = [self.security_group.id]
        self.register_outputs({"vpc_id": self.vpc.id, "subnet_ids": self.subnet_ids})


def zone_at(i: int) -> Callable[[list[str]], str]:
    """The i-th subnet's availability zone, round-robin over the region's zones."""
    return lambda zones: zones[i % len(zones)]
