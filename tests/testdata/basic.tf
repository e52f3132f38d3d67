# One mirror; every argument comes from a variable so each test step can change it.
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

variable "tag" {
  type    = string
  default = null
}

variable "platform" {
  type    = string
  default = null
}

variable "keep_remotely" {
  type    = bool
  default = null
}

variable "track_source" {
  type    = bool
  default = null
}

variable "copy_method" {
  type    = string
  default = null
}

variable "provider_copy_method" {
  type    = string
  default = null
}

variable "docker_host" {
  type    = string
  default = null
}

variable "profile" {
  type    = string
  default = null
}

variable "create_timeout" {
  type    = string
  default = null
}

variable "triggers" {
  type    = map(string)
  default = null
}

provider "ecrmirror" {
  profile     = var.profile
  docker_host = var.docker_host
  copy_method = var.provider_copy_method
}

resource "ecrmirror_image" "test" {
  docker_source = var.source_image
  repository    = var.repository
  tag           = var.tag
  platform      = var.platform
  keep_remotely = var.keep_remotely
  track_source  = var.track_source
  copy_method   = var.copy_method
  triggers      = var.triggers

  timeouts {
    create = var.create_timeout
  }
}

output "pinned" {
  value = ecrmirror_image.test.image_uri_digest
}
