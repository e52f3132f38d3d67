# The configuration `make bench` applies: one mirror, by the method under test.
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

variable "copy_method" {
  type = string
}

variable "copy_referrers" {
  type    = bool
  default = false
}

resource "ecrmirror_image" "bench" {
  docker_source  = var.source_image
  repository     = var.repository
  copy_method    = var.copy_method
  copy_referrers = var.copy_referrers
}
