# A source registry that needs credentials, given in a registry_auth block.
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

variable "source_host" {
  type = string
}

variable "track_source" {
  type    = bool
  default = null
}

variable "copy_method" {
  type    = string
  default = null
}

variable "source_password" {
  type      = string
  sensitive = true
}

provider "ecrmirror" {
  registry_auth {
    address  = var.source_host
    username = "mirror-bot"
    password = var.source_password
  }
}

resource "ecrmirror_image" "test" {
  docker_source = var.source_image
  repository    = var.repository
  track_source  = var.track_source
  copy_method   = var.copy_method
}
