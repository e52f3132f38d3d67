terraform {
  required_providers {
    ecrmirror = {
      source = "techtospeech/ecrmirror"
    }
  }
}

provider "ecrmirror" {
  region = "eu-west-1"
  # profile = "mirroring" # a named AWS profile; left out, the AWS SDK's default chain
  #                       # (environment credentials, AWS_PROFILE, an instance or task role)

  # Credentials for a source registry; others use ~/.docker/config.json, else anonymous pulls.
  registry_auth {
    address  = "registry-1.docker.io"
    username = "me"
    password = var.hub_token
  }
}

variable "hub_token" {
  type      = string
  sensitive = true
}
