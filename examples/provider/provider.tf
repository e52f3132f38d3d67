provider "ecrmirror" {
  region  = "eu-west-1"
  profile = "default"

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
