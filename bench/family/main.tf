# The family workload of `make bench`: images that share a base layer, each mirrored into its
# own repository, in one apply.
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

variable "images" {
  type = number
}

provider "ecrmirror" {
  copy_method = "registry"
}

resource "ecrmirror_image" "family" {
  for_each      = toset([for n in range(var.images) : tostring(n)])
  docker_source = "${var.source_host}/bench/family-${each.key}:1"
  repository    = "family/${each.key}"
  tag           = "bench"
}
