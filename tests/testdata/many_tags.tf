# One source mirrored to many tags of one repository at once (Terraform runs up to ten
# resource operations in parallel).
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

resource "ecrmirror_image" "tags" {
  count         = 12
  docker_source = var.source_image
  repository    = var.repository
  tag           = "t${count.index}"
  copy_method   = var.copy_method
}
