# SageMaker bring-your-own-container image for `streamscore serve`.
#
#   docker build -t streamscore-serve .
#   docker run -p 8080:8080 -v "$PWD/scorer/testdata/fidelity/model.tar.gz:/opt/ml/model/model.tar.gz:ro" streamscore-serve
#
# SageMaker starts the container as `docker run IMAGE serve`, unpacks the
# model artifact into /opt/ml/model and sends GET /ping and POST /invocations
# to port 8080; the entrypoint below turns that into `streamscore serve`.
# `streamscore serve` listens on 127.0.0.1 by default; SageMaker replaces the
# CMD with the single word "serve", so the listen address comes from
# STREAMSCORE_SERVE_HOST, and the CMD passes it explicitly too.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/streamscore ./cmd/streamscore

FROM gcr.io/distroless/static-debian12:nonroot
# SageMaker accepts the image for a multi-model endpoint only with this
# label, and runs its containers with SAGEMAKER_MULTI_MODEL=true, which
# switches `streamscore serve` to the multi-model contract (POST /models...).
LABEL com.amazonaws.sagemaker.capabilities.multi-models=true
COPY --from=build /out/streamscore /usr/local/bin/streamscore
EXPOSE 8080
ENV STREAMSCORE_SERVE_HOST=0.0.0.0
ENTRYPOINT ["/usr/local/bin/streamscore"]
CMD ["serve", "--model", "/opt/ml/model", "--host", "0.0.0.0", "--port", "8080"]
