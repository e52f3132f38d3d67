# Import an existing tag: REPOSITORY:TAG, or the full <registry host>/<repository>:<tag>.
import {
  to = ecrmirror_image.nginx
  id = "mirror/nginx:1.27"
}
