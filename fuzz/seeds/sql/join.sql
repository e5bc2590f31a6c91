SELECT l.series_id, s.title, l.date, l.value FROM latest l JOIN series s ON s.id = l.series_id WHERE l.series_id IN ('GDPC1', 'UNRATE') AND l.date >= DATE '2024-01-01'
