# Values unknown at plan time are accepted; they are checked at apply.
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

resource "terraform_data" "source" {
  input = "nginx:1.27"
}

resource "ecrmirror_image" "later" {
  docker_source = terraform_data.source.output
  repository    = var.repository
}
