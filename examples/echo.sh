#!/bin/sh
# echo.sh: copies stdin to stdout line by line, until end of input.
while IFS= read -r line || [ -n "$line" ]; do
	printf '%s\n' "$line"
done
