-- Version 11: time zones by IANA name. A tenant's zone for its policy time conditions and its
-- console ('' = the fixed offset of utc_offset_minutes, as before this version; Japan's tenants
-- become Asia/Tokyo); a user's own zone for what the console shows them ('' = the tenant's).
ALTER TABLE tenants ADD COLUMN time_zone TEXT NOT NULL DEFAULT '';
UPDATE tenants SET time_zone = 'Asia/Tokyo' WHERE utc_offset_minutes = 540;
ALTER TABLE users ADD COLUMN time_zone TEXT NOT NULL DEFAULT '';
