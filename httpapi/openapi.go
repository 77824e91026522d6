package httpapi

import (
	_ "embed"

	"github.com/valyala/fasthttp"
)

// OpenAPI is the OpenAPI 3 document of the whole API, served at GET /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

func serveOpenAPI(ctx *fasthttp.RequestCtx) {
	writeJSON(ctx, fasthttp.StatusOK, OpenAPI)
}
