module plinth.dev/hack/images

go 1.26.0
