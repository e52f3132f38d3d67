# Plan overhead with `verify`: the same N mirrors, each verified by a key (make bench).
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

resource "ecrmirror_image" "m" {
  count         = var.n
  docker_source = var.source_image
  repository    = var.repository
  tag           = "v${count.index}"
  copy_method   = "registry"
  verify {
    keys = [file("cosign.pub")]
  }
}
