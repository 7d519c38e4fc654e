# Build a static sluice binary and ship it alone.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /sluice ./cmd/sluice

FROM gcr.io/distroless/static-debian12
COPY --from=build /sluice /sluice
USER nonroot
EXPOSE 8000
ENTRYPOINT ["/sluice", "serve"]
