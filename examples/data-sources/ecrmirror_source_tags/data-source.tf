terraform {
  required_providers {
    ecrmirror = {
      source = "techtospeech/ecrmirror"
    }
  }
}

# Every 1.27.x Alpine release of nginx, release candidates left out: one mirror per tag.
data "ecrmirror_source_tags" "nginx" {
  repository = "nginx"
  match      = "^1\\.27\\.\\d+-alpine$"
  exclude    = "-rc\\d*$"
}

resource "ecrmirror_image" "nginx" {
  for_each      = toset(data.ecrmirror_source_tags.nginx.tags)
  docker_source = "nginx:${each.key}"
  repository    = "mirror/nginx"
}

# The three newest releases of the 2.x line of an app, by version.
data "ecrmirror_source_tags" "app" {
  repository = "ghcr.io/org/app"
  versions   = ">= 2, < 3"
  latest     = 3
}

output "app_tags" {
  value = data.ecrmirror_source_tags.app.tags
}
