# The README's example. `make demo` points source_registry at the local stand-in world;
# with the default it mirrors from Docker Hub.
terraform {
  required_providers {
    ecrmirror = {
      source = "techtospeech/ecrmirror"
    }
  }
}

variable "source_registry" {
  type    = string
  default = "docker.io"
}

provider "ecrmirror" {
  region = "eu-west-1"
  # profile = "mirroring" # optional: a named AWS profile (default: the AWS SDK's chain)
}

resource "ecrmirror_image" "wordpress" {
  docker_source = "${var.source_registry}/library/wordpress:php7.4-apache"
  repository    = "php_wordpress"
  tag           = "base"
  platform      = "linux/arm64/v8"
}

output "pinned" {
  value = ecrmirror_image.wordpress.image_uri_digest
}
