# Two mirrors of one multi-platform source, one per platform, made in parallel.
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

resource "ecrmirror_image" "amd64" {
  docker_source = var.source_image
  repository    = var.repository
  tag           = "amd64"
  platform      = "linux/amd64"
}

resource "ecrmirror_image" "arm64" {
  docker_source = var.source_image
  repository    = var.repository
  tag           = "arm64"
  platform      = "linux/arm64/v8"
}
