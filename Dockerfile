# mlsworker and mlsadmin in a small image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /out/mlsworker ./cmd/mlsworker && CGO_ENABLED=0 go build -o /out/mlsadmin ./cmd/mlsadmin

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mlsworker /out/mlsadmin /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/mlsworker"]
