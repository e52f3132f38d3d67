# An import block with no resource block: `terraform plan -generate-config-out` writes one.
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

import {
  to = ecrmirror_image.adopted
  id = "${var.repository}:1.0"
}
