# Every resource here is invalid in one way; plan must name each attribute and contact nothing.
terraform {
  required_providers {
    ecrmirror = {
      source = "techtospeech/ecrmirror"
    }
  }
}

variable "repository" {
  type = string
}

resource "ecrmirror_image" "bad_source" {
  docker_source = "Not A Reference"
  repository    = var.repository
}

resource "ecrmirror_image" "bad_repository" {
  docker_source = "nginx:1.27"
  repository    = "Mirror/App"
}

resource "ecrmirror_image" "bad_tag" {
  docker_source = "nginx:1.27"
  repository    = var.repository
  tag           = "-leading-dash"
}

resource "ecrmirror_image" "bad_platform" {
  docker_source = "nginx:1.27"
  repository    = var.repository
  platform      = "linux"
}

resource "ecrmirror_image" "digest_without_tag" {
  docker_source = "nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000"
  repository    = var.repository
}

resource "ecrmirror_image" "null_source" {
  docker_source = null
  repository    = var.repository
}

resource "ecrmirror_image" "bad_timeout" {
  docker_source = "nginx:1.27"
  repository    = var.repository

  timeouts {
    create = "soon"
  }
}

# OCI digests are lowercase hexadecimal: refused at plan, whatever the copy method.
resource "ecrmirror_image" "uppercase_digest_docker" {
  docker_source = "nginx:1.27@sha256:EB2F0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"
  repository    = var.repository
}

resource "ecrmirror_image" "uppercase_digest_registry" {
  docker_source = "nginx@sha256:EB2F0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"
  repository    = var.repository
  tag           = "1.27"
  copy_method   = "registry"
}
