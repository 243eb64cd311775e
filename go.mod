module github.com/mlsengine/mlsengine

go 1.26

require (
	github.com/cloudflare/circl v1.6.5
	github.com/vmihailenco/msgpack/v5 v5.4.1
	golang.org/x/crypto v0.54.0
)

require (
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
)
