terraform {
  required_providers {
    ecrmirror = {
      source = "techtospeech/ecrmirror"
    }
  }
}

# Import an existing tag: REPOSITORY:TAG, or the full <registry host>/<repository>:<tag>.
import {
  to = ecrmirror_image.nginx
  id = "mirror/nginx:1.27"
}

# Import cannot know where the image came from: say it here (or let
# `terraform plan -generate-config-out=generated.tf` write this block, and fill in
# `docker_source`). When ECR already holds that image, the apply transfers nothing.
resource "ecrmirror_image" "nginx" {
  docker_source = "nginx:1.27"
  repository    = "mirror/nginx"
}
