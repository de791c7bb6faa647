"""From industry curves to cover: products, rate tables, sharing discounts, the pool."""
