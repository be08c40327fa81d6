package api

import (
	"strings"
)

// literal quotes s as an OData string literal ('…' with ' doubled) and
// percent-encodes it for a query string.
func literal(s string) string {
	return "'" + escape(strings.ReplaceAll(s, "'", "''")) + "'"
}

// escape percent-encodes s like JavaScript's encodeURIComponent, which the
// SDK uses: everything but letters, digits and -_.!~*'() is encoded.
func escape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') ||
			strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// filterEq is a $filter option "<field> eq '<value>'", encoded.
func filterEq(field, value string) string {
	return "$filter=" + field + "%20eq%20" + literal(value)
}
