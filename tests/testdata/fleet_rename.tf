# A fleet of 25 mirrors in one repository whose for_each keys are renamed (no moved block):
# each rename destroys the old instance and creates the new one of the same tag in one apply.
terraform {
  required_providers {
    ecrmirror = {
      source = "techtospeech/ecrmirror"
    }
  }
}

variable "source_host" {
  type = string
}

variable "prefix" {
  type = string
}

variable "method" {
  type = string
}

provider "ecrmirror" {}

resource "ecrmirror_image" "m" {
  for_each      = { for n in range(25) : "${var.prefix}${n}" => n }
  docker_source = "${var.source_host}/upstream/app:s${each.value % 4}"
  repository    = "mirror/app"
  tag           = "t${each.value}"
  copy_method   = var.method
}
