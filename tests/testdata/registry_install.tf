# The provider installed by `terraform init` from a provider registry; the test writes the
# registry's host in place of REGISTRY_HOST.
terraform {
  required_providers {
    ecrmirror = {
      source  = "REGISTRY_HOST/techtospeech/ecrmirror"
      version = "~> 0.1"
    }
  }
}

variable "source_image" {
  type = string
}

variable "repository" {
  type = string
}

resource "ecrmirror_image" "test" {
  docker_source = var.source_image
  repository    = var.repository
}
