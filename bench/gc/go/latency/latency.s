// Empty: lets main.go declare nanotime without a body (go:linkname).
