# Plan overhead: N mirrors of one small image, with `verify` by the key in cosign.pub when
# `verified` (make bench).
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

variable "n" {
  type = number
}

variable "verified" {
  type    = bool
  default = false
}

resource "ecrmirror_image" "m" {
  count         = var.n
  docker_source = var.source_image
  repository    = var.repository
  tag           = "${var.verified ? "v" : "t"}${count.index}"
  copy_method   = "registry"

  dynamic "verify" {
    for_each = var.verified ? [file("cosign.pub")] : []
    content {
      keys = [verify.value]
    }
  }
}
