"""The training function's container image: an ECR repository and the image built into it.

Training dependencies (scikit-learn, skl2onnx, pandas, pyarrow) do not fit Lambda's 250 MB zip
limit, so `train` ships as an image built from functions/Dockerfile. With `trainImageUri` set the
program uses that image and builds nothing; otherwise it builds and pushes with the
pulumi-docker-build provider (needs a Docker daemon with buildx where `pulumi up` runs; never
during `pulumi preview`, which builds nothing).

Lambda gets the image by digest only (`repo@sha256:...`): it refuses a reference with both a
tag and a digest, which is what docker-build's `ref` is (`repo:tag@sha256:...`). A prebuilt
`repo:tag` is resolved to its digest with ECR's DescribeImages.

The build context is staged (pyproject.toml, README.md, src/, functions/*.py) instead of sending
the repository root (virtualenvs, build outputs), and is given to the provider as a path
relative to the working directory, so every checkout has the same inputs. Its content hash is
the image tag. Tags are mutable: another checkout (or a rebuild with a newer base image) may
push the same tag again; Lambda pins the digest anyway.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra.components.tags import component_tags
from infra.config import image_uri_parts

ROOT = Path(__file__).resolve().parents[2]
KEEP_IMAGES = 10


def stage_context(root: Path, out: Path) -> str:
    """Copy the files the Dockerfile needs into out; return their content hash (the tag)."""
    if out.exists():
        shutil.rmtree(out)
    files = [root / "pyproject.toml", root / "functions" / "Dockerfile",
             root / "requirements" / "train.txt"]
    files += [root / "README.md"] if (root / "README.md").exists() else []
    files += sorted(p for p in (root / "src").rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts and ".egg-info" not in str(p))
    files += sorted((root / "functions").glob("*.py"))
    digest = hashlib.sha256()
    for f in files:
        rel = f.relative_to(root)
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, out / rel)
        digest.update(rel.as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    if not (out / "README.md").exists():  # pyproject names a readme; setuptools wants it
        (out / "README.md").write_text("mlops-kit\n")
    return digest.hexdigest()[:16]


def digest_only(repository_url: str, digest: str) -> str:
    """The one image reference Lambda accepts for a pinned image: repo@sha256:<digest>."""
    if "@" in repository_url or ":" in repository_url.rsplit("/", 1)[-1]:
        raise ValueError(f"{repository_url!r}: a repository URL, without tag or digest")
    if not digest.startswith("sha256:"):
        raise ValueError(f"not an image digest: {digest!r}")
    return f"{repository_url}@{digest}"


def repository_arn(image_uri: str) -> str:
    """The ECR repository ARN of an image URI (any account/region, tag and/or digest): what a
    puller's ecr:BatchGetImage and ecr:GetDownloadUrlForLayer must be allowed on."""
    parts = image_uri_parts(image_uri)
    repo = str(parts["repo"])
    partition = "aws-cn" if ".amazonaws.com.cn/" in repo + "/" else "aws"
    return (f"arn:{partition}:ecr:{parts['region']}:{repo.split('.', 1)[0]}:"
            f"repository/{parts['name']}")


def relative_to_cwd(path: Path) -> str:
    """A path as the provider will see it from the program's working directory (the same in
    every checkout), never an absolute path that changes the resource's inputs."""
    return Path(os.path.relpath(path, Path.cwd())).as_posix()


@dataclass
class TrainImageArgs:
    name_prefix: str
    image_uri: str | None = None  # prebuilt; skips the build
    force_delete: bool = False  # delete the repository even with images in it (no protection)
    context_dir: Path = ROOT / "build" / "train-image"


class TrainImage(pulumi.ComponentResource):
    def __init__(self, name: str, args: TrainImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlopskit:functions:TrainImage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repository = aws.ecr.Repository(
            f"{args.name_prefix}-train", image_tag_mutability="MUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS"}],
            force_delete=args.force_delete, tags=component_tags("train-image"), opts=child)
        aws.ecr.LifecyclePolicy(
            f"{args.name_prefix}-train-lifecycle", repository=self.repository.name,
            policy=json.dumps({"rules": [{
                "rulePriority": 1, "description": f"keep the last {KEEP_IMAGES} images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                              "countNumber": KEEP_IMAGES},
                "action": {"type": "expire"}}]}),
            opts=child)
        if args.image_uri:
            self.image_uri: pulumi.Output[str] = self._prebuilt(args.image_uri)
            # the image's own repository (trainImageUri), not the stack's empty one
            self.pull_repository_arn: pulumi.Output[str] = pulumi.Output.from_input(
                repository_arn(args.image_uri))
        else:
            self.image_uri = self._build(args, child)
            self.pull_repository_arn = self.repository.arn
        self.register_outputs({"repository_url": self.repository.repository_url,
                               "image_uri": self.image_uri})

    def _prebuilt(self, uri: str) -> pulumi.Output[str]:
        parts = image_uri_parts(uri)
        repo = str(parts["repo"])
        if parts["digest"]:
            return pulumi.Output.from_input(f"{repo}@{parts['digest']}")
        image = aws.ecr.get_image_output(
            registry_id=repo.split(".", 1)[0], repository_name=parts["name"],
            image_tag=parts["tag"], opts=pulumi.InvokeOutputOptions(parent=self))
        return image.image_digest.apply(lambda d: f"{repo}@{d}")

    def _build(self, args: TrainImageArgs, child: pulumi.ResourceOptions) -> pulumi.Output[str]:
        try:
            import pulumi_docker_build as docker_build
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError(
                "building the training image needs the pulumi-docker-build package "
                "(pip install pulumi-docker-build), or set trainImageUri to a pushed image "
                "(see docs/deploy-aws.md)") from exc
        tag = stage_context(ROOT, args.context_dir)
        token = aws.ecr.get_authorization_token_output(
            registry_id=self.repository.registry_id, opts=pulumi.InvokeOutputOptions(parent=self))
        context = relative_to_cwd(args.context_dir)
        image = docker_build.Image(
            f"{args.name_prefix}-train-image",
            context={"location": context},
            dockerfile={"location": f"{context}/functions/Dockerfile"},
            platforms=[docker_build.Platform.LINUX_AMD64],  # Lambda x86_64, whatever builds it
            # (the provider adds no provenance attestation, so the push is a single image
            # manifest, not the index Lambda refuses; a manual build needs --provenance=false)
            build_on_preview=False,  # preview needs no daemon; `up` builds
            push=True,
            tags=[self.repository.repository_url.apply(lambda url: f"{url}:{tag}")],
            registries=[{"address": self.repository.repository_url,
                         "username": token.user_name, "password": token.password}],
            opts=child)
        # ref is repo:tag@sha256:... (refused by Lambda); pin repo@digest, exactly what was pushed
        return pulumi.Output.all(self.repository.repository_url, image.digest).apply(
            lambda a: digest_only(a[0], a[1]))
