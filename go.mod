module github.com/mlsengine/mlsengine

go 1.26

require github.com/cloudflare/circl v1.6.5 // indirect
