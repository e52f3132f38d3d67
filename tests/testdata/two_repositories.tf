# One source mirrored into two repositories of one registry, one after the other.
terraform {
  required_providers {
    ecrmirror = {
      source = "techtospeech/ecrmirror"
    }
  }
}

variable "source_image" {
  type = string
}

variable "repository" {
  type = string
}

resource "ecrmirror_image" "first" {
  docker_source = var.source_image
  repository    = var.repository
  copy_method   = "registry"
}

resource "ecrmirror_image" "second" {
  docker_source = var.source_image
  repository    = "${var.repository}-copy"
  copy_method   = "registry"
  depends_on    = [ecrmirror_image.first]
}
